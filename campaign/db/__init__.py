"""Database access: models, engine and session factory, dialect differences."""
