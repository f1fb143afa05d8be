"""Input/output: run records, PNG grids, atomic sharded sample files."""
