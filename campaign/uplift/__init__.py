"""The uplift model: whom a message changes, learned from holdouts and past A/B tests
(docs/uplift.md)."""
