import { defineConfig } from "vitest/config";

// Two projects: `unit` is pure and Pulumi-mocked work that runs anywhere; `real` starts the real
// PostgreSQL, PgBouncer, exporters and Prometheus (see local/runtime), so it runs its files one at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["tests/unit/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "real",
          include: ["tests/real/**/*.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
