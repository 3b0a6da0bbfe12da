"""Outputs: the table and NDJSON formats, and the --summary process tree."""
