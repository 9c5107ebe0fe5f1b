"""The service core: settings, client intake, document starts and dependency wiring; what the
CLI (wavelaunch/) and the web app (crm/) both call. It imports neither of them."""
