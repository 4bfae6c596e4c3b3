"""SQL: SQLAlchemy Core over MySQL/MariaDB/TiDB (PyMySQL, aiomysql) or SQLite (aiosqlite)."""
