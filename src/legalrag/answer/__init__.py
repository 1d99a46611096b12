"""Answer stage: prompt, local model, citation check, and the assistant that ties them."""
