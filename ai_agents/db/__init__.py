"""PostgreSQL access: table definitions, engine, and driver-error translation."""
