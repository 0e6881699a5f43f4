"""The catalog database: SQLModel tables, sessions, migrations and the access rules."""
