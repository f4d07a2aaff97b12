"""This service's HTTP app: add routes here."""

from shared.app import create_app

MESSAGE = "hello"

app = create_app(__package__ or __name__, MESSAGE)
