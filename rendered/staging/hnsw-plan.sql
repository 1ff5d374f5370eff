-- HNSW index plan rendered by pgvector-stack; applied by the post-deploy hook (postdeploy/indexes.ts).

-- memories.embedding: vector(768) cosine, 3080 bytes per vector, storage plain
-- build with maintenance_work_mem = 2GB, max_parallel_maintenance_workers = 4; queries SET LOCAL hnsw.ef_search = 40
ALTER TABLE "memories" ALTER COLUMN "embedding" SET STORAGE PLAIN;
CREATE INDEX CONCURRENTLY IF NOT EXISTS "memories_embedding_hnsw_idx" ON "memories" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 128);
