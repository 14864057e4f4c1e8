"""Security tests: route-walk authorization, headers and cookies, the template sandbox, the API."""
