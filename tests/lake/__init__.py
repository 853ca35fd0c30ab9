"""Tests of etl.lake: local and S3 lakes, publish, tables, query, compaction, leases."""
