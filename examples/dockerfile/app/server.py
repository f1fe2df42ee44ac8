import http.server

http.server.test(http.server.SimpleHTTPRequestHandler, port=8000, bind="0.0.0.0")
