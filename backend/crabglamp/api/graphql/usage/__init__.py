"""Usage on the three axes, nested: usage → compute/llm/voice → daily, agents, models, keys."""
