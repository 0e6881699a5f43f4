"""The catalog service: the database, the artifact store, access rules and the jobs that call the engine."""
