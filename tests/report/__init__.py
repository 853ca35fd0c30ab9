"""Tests of etl.report."""
