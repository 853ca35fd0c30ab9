"""Tests of etl.runner: the steps of an interval and their edges."""
