"""Use cases: what the command line, the daemon, the web server and the demo ask for.

Each function is one thing an operator means ("plan and announce a run", "retrain and
score", "build a report"); it composes the features in the one order the product
follows, so no entry point writes that order again. Entry points parse their input,
call one use case and print or log what comes back. This layer never prints, never
logs to a user and never reads the command line.

Importing the package loads nothing: each module imports its features when called.
"""
