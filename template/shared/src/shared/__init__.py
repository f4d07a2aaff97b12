"""Code that every service shares: the HTTP app factory, the server runner, probes."""
