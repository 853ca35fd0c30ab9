"""Tests of etl.discover: feeds, sitemaps, URL lists, WARC files."""
