"""Tests of etl.article: charset, metadata, extract, clean, normalize, dedupe."""
