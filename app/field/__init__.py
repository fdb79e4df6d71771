"""The grid worker's phone app, under `/field`: an offline-first web app of the same API."""
