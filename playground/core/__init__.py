"""The headless core: models, prompts, the engine, lanes and the session log. Never imports Textual."""
