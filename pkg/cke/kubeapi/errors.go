package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// APIError is an answer of the API other than 2xx, read from the Status
// object the API sends with it.
type APIError struct {
	// Code is the HTTP status code.
	Code int
	// Reason is the Status reason, e.g. NotFound, AlreadyExists, Conflict,
	// Forbidden, Invalid; empty when the answer held no Status.
	Reason string
	// Message is the Status message, or the start of the answer's body.
	Message string
}

func (e *APIError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%d %s: %s", e.Code, reason, e.Message)
}

// IsNotFound reports whether err is the API's 404: the object, or its
// namespace, does not exist.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// IsConflict reports whether err is the API's 409 for a change made on an
// outdated object (its resourceVersion changed since it was read) or, with
// server-side apply, for fields another manager owns. An object that
// already exists is not a conflict: see IsAlreadyExists.
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusConflict && e.Reason != reasonAlreadyExists
}

// IsAlreadyExists reports whether err is the API's 409 for the creation of
// an object that exists.
func IsAlreadyExists(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusConflict && e.Reason == reasonAlreadyExists
}

const reasonAlreadyExists = "AlreadyExists"

// maxMessage bounds the message of an error answer without a Status.
const maxMessage = 1024

// parseError makes the error of an answer other than 2xx.
func parseError(code int, body []byte) *APIError {
	var st struct {
		Kind    string `json:"kind"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		return &APIError{Code: code, Reason: st.Reason, Message: st.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
		msg += "…"
	}
	return &APIError{Code: code, Message: msg}
}

// checkName refuses an empty name: the path of an object with an empty name
// is the path of its collection, and DELETE there deletes them all.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("kubeapi: empty %s name", what)
	}
	return nil
}

func checkNamespacedName(what, ns, name string) error {
	if ns == "" {
		return fmt.Errorf("kubeapi: %s %s: empty namespace", what, name)
	}
	return checkName(what, name)
}
