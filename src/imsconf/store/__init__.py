"""Storage backends: the seams every store implements (SQLite embedded, PostgreSQL shared), the
conference directory, and the selection by settings.  Modules named ``*_pg.py`` and ``pg.py`` import the
PostgreSQL driver (the optional ``cluster`` extra); the others never do."""
