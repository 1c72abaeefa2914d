"""The marketer's console: a web page over the same use cases as the command line."""
