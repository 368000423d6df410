"""hlru-lm: BD-LRU / H-LRU language models."""
