// Package docscheck holds tests that keep the project's documents honest:
// every test SECURITY.md names exists in the package it names.
package docscheck
