"""The partner bridge: each partner's own Kafka topics <-> Verbund's internal shared topics.

``verbund.partner.<id>.events`` -> (checked) -> ``verbund.partner.events``;
``verbund.partner.orders`` -> ``verbund.partner.<recipient>.orders``. Kafka ACLs work per
topic, so per-partner topics are what lets ACLs keep a partner to its own records
(docs/partner-onboarding.md, section 4).
"""
