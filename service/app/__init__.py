"""The HTTP app: `factory.create_app` builds it from the routes, the request-body checks, the
middleware and the try-it page. It talks to the model only through `service.runtime`."""
