"""The DAGs under real Airflow (subprocesses): parsing, runs, backfills, cluster."""
