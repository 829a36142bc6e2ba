"""The notifier's outside world: SMS gateways, postal operators and the rate limit they share."""
