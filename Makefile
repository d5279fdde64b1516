# The two commands of the README.
.PHONY: book test

book:   ## set up .venv if needed and build the whole book (every notebook executed), warnings as errors
	bash scripts/build_book.sh

test:   ## set up .venv if needed and run every test: unit tests, notebooks under nbval, the book build
	bash scripts/test.sh
