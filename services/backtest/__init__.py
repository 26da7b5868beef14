"""Backtest report: metrics and the report built from the backtest CSVs."""
