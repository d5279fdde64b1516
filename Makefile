# The two commands of the README.
.PHONY: book test

book:   ## set up .venv if needed and build the whole book (every notebook executed), warnings as errors
	bash scripts/build_book.sh

test:   ## set up .venv if needed and run every test: the book build (executing every notebook), unit tests, checks of the built pages
	bash scripts/test.sh
