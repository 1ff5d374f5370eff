-- HNSW index plan rendered by pgvector-stack; applied by the post-deploy hook (postdeploy/indexes.ts).

-- memories.embedding: vector(768) cosine, 3080 bytes per vector, storage plain
-- build with maintenance_work_mem = 1GB, max_parallel_maintenance_workers = 2; queries SET LOCAL hnsw.ef_search = 40
CREATE TABLE IF NOT EXISTS "memories" (id bigserial PRIMARY KEY, "tier" text NOT NULL, "embedding" vector(768) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS "memories_tier_btree_idx" ON "memories" ("tier");
ALTER TABLE "memories" ALTER COLUMN "embedding" SET STORAGE PLAIN;
CREATE INDEX CONCURRENTLY IF NOT EXISTS "memories_embedding_hnsw_idx" ON "memories" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 128);
