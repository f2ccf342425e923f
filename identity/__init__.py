"""OneID: resolving every event to one person across channels."""
