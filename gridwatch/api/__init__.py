"""The HTTP JSON API (``/api/v1/…``), served by the app's own server process on the app's port.

``app.py`` hands :meth:`Api.routes` to Streamlit's ``st.App``, which serves them beside the screens; the routes
call :mod:`gridwatch.services` with the caller (a person's session, or an integration's token) as the actor.
"""

from gridwatch.api.routes import PREFIX, ROUTES, Api

__all__ = ["Api", "ROUTES", "PREFIX"]
