from talkedit.cli import app

app()
