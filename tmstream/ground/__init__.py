"""The ground layer: settings, user errors, Kafka/Redis clients, topic admin and reading, scrape targets.

It imports no other tmstream package, so every layer above may use it.
"""
