"""adapter-webhook: every other department, reached by signed webhooks configured per unit."""
