"""Importers of public data sets into the data contract (one module per source)."""
