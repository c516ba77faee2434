"""OpenAI's API (chat completions, completions, models) over this server's engines: the
request mapping (`params`), the replies (`render`) and the calls (`service`)."""
