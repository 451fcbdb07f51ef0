"""The plumbing of cxpulse: the Faust app, topics, agents, tables, metrics and the CLI."""
