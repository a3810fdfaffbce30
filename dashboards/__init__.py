"""Grafana dashboards as code (grafana-foundation-sdk), their provisioning and their push to Grafana."""
