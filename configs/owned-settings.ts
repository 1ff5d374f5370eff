/**
 * postgresql.conf settings the stack owns: `postgres.settings` may not override them (after CloudNativePG's
 * `FixedConfigurationParameters` list). Overriding one is an error, never a silent drop, and the reason here is
 * what the error shows, so each names where the value comes from or which stack key to change instead.
 */
export const ownedSettings: ReadonlyMap<string, string> = new Map<string, string>([
  // Where the server listens and where its files are: the targets (pod, container, local rig) wire ports, volumes and
  // Services to these values.
  ["listen_addresses", "the targets expose PostgreSQL only through their own Services/ports; set docker.publishAddress instead"],
  ["port", "Services, PgBouncer and the exporters are wired to port 5432; set docker.ports.postgres for the published port"],
  ["unix_socket_directories", "PgBouncer and the exporters reach the server through this socket directory"],
  ["unix_socket_permissions", "the socket's mode decides which local programs may connect"],
  ["unix_socket_group", "the socket's group decides which local programs may connect"],
  ["data_directory", "the data volume is mounted by the target at a fixed path"],
  ["config_file", "the rendered postgresql.conf is the configuration"],
  ["hba_file", "pg_hba.conf is rendered from the stack (SCRAM only, allowed networks)"],
  ["ident_file", "pg_ident.conf is not used; authentication is SCRAM only"],
  ["external_pid_file", "the target manages the server process"],
  ["include", "the rendered postgresql.conf is complete; includes would hide settings from drift checks"],
  ["include_dir", "the rendered postgresql.conf is complete; includes would hide settings from drift checks"],
  ["include_if_exists", "the rendered postgresql.conf is complete; includes would hide settings from drift checks"],
  // Extensions and security the rest of the stack relies on.
  ["shared_preload_libraries", "pg_stat_statements is preloaded for the exporter's query metrics"],
  ["password_encryption", "SCRAM-SHA-256 is required by pg_hba.conf and PgBouncer's auth file"],
  ["allow_alter_system", "ALTER SYSTEM would let the live server drift from the rendered file"],
  ["ssl", "TLS is terminated by the target's network layer; enabling it needs the certificate files the stack mounts"],
  ["ssl_cert_file", "certificate paths belong to the target's mounted secrets"],
  ["ssl_key_file", "certificate paths belong to the target's mounted secrets"],
  ["ssl_ca_file", "certificate paths belong to the target's mounted secrets"],
  ["ssl_crl_file", "certificate paths belong to the target's mounted secrets"],
  ["ssl_crl_dir", "certificate paths belong to the target's mounted secrets"],
  // Sizing derived from node RAM and cpus: change node.memory / node.cpus, not the settings.
  ["shared_buffers", "sized from node.memory (25 % of RAM, tuning guide); change node.memory"],
  ["huge_pages", "set postgres.hugePages (on, try or off); the huge page count is computed from it"],
  ["huge_page_size", "the huge page count is computed for 2 MiB pages"],
  ["max_connections", "set postgres.maxConnections; PgBouncer's pool and the memory worst case are computed from it"],
  ["superuser_reserved_connections", "set postgres.reservedConnections.maintenance"],
  ["reserved_connections", "set postgres.reservedConnections.monitoring"],
  ["max_worker_processes", "sized from node.cpus; it sizes shared memory and so the huge page count"],
  ["max_wal_senders", "it sizes shared memory and so the huge page count"],
  ["max_prepared_transactions", "it sizes shared memory and so the huge page count"],
  ["max_locks_per_transaction", "it sizes shared memory and so the huge page count"],
  ["max_pred_locks_per_transaction", "it sizes shared memory and so the huge page count"],
  ["autovacuum_max_workers", "it sizes shared memory and so the huge page count"],
  ["wal_buffers", "sized from shared_buffers; it is part of shared memory and so of the huge page count"],
  ["transaction_buffers", "PostgreSQL 17 sizes it from shared_buffers; it is part of the huge page count"],
  ["subtransaction_buffers", "PostgreSQL 17 sizes it from shared_buffers; it is part of the huge page count"],
  ["commit_timestamp_buffers", "PostgreSQL 17 sizes it from shared_buffers; it is part of the huge page count"],
  ["multixact_member_buffers", "it sizes shared memory and so the huge page count"],
  ["multixact_offset_buffers", "it sizes shared memory and so the huge page count"],
  ["notify_buffers", "it sizes shared memory and so the huge page count"],
  ["serializable_buffers", "it sizes shared memory and so the huge page count"],
  ["min_dynamic_shared_memory", "it is added to the main shared memory segment and so to the huge page count"],
  ["max_replication_slots", "it sizes shared memory and so the huge page count"],
  ["statement_timeout", "set postgres.statementTimeout"],
  // What the log pipeline and the slow-query counter parse.
  ["logging_collector", "the targets collect stderr; the log pipeline reads it"],
  ["log_destination", "the log pipeline parses stderr lines in the rendered log_line_prefix format"],
  ["log_line_prefix", "the log pipeline parses this exact prefix"],
  ["log_min_duration_statement", "the slow-query count (tuning guide: log queries over 100 ms) is parsed from these lines"],
  ["log_timezone", "the log pipeline reads timestamps in UTC"],
  ["cluster_name", "the log pipeline and process titles carry the stack's name"],
]);
