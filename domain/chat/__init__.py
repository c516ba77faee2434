"""Chat sessions: durable multi-turn conversations over the database, context-window
trimming through the model's chat template, reply providers and the optional Redis cache."""
