"""Streaming budgets and alerts: rules, the faust app, the alerts table (docs/alerts.md)."""
