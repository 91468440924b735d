"""The demo: a synthetic SaaS user base (`synthetic`), example audience rules (`rules/`)."""
