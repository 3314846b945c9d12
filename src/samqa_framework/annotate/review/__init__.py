"""The review page: a person answers SAM-QA's questions during a run (``prompts=web``) and fixes labels afterwards
(``samqa-review``). ``session.py`` holds what the page shows and changes, ``app.py`` the HTTP routes (token, size cap,
CSP), ``server.py`` runs them on uvicorn in a thread, ``board.py`` the timeline, ``images.py`` the frames,
``client.py`` the oracle answering over HTTP, ``task.py`` the samqa-review task; ``static/`` the page itself."""
