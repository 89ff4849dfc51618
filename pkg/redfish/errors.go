package redfish

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// errKind is what went wrong with a request, as the client must be told.
type errKind int

const (
	errInternal errKind = iota // the zero value: anything not an *apiError
	errUnauthorized
	errNotFound
	errMethodNotAllowed
	errTooLarge
	errMalformedJSON
	errPropertyMissing
	errParameterMissing
	errParameterUnknown
	errParameterType
	errParameterNotSupported
)

// registryMessage is one message of DMTF's Base message registry 1.8.
type registryMessage struct {
	status     int
	key        string // MessageId is "Base.1.8." + key
	text       string // with %1, %2, … for the message arguments
	severity   string
	resolution string
}

// messages maps each kind of error to its status and registry message.
var messages = map[errKind]registryMessage{
	errInternal: {http.StatusInternalServerError, "InternalError",
		"The request failed due to an internal service error.  The service is still operational.", "Critical",
		"Resubmit the request.  If the problem persists, consider resetting the service."},
	errUnauthorized: {http.StatusUnauthorized, "NoValidSession",
		"There is no valid session established with the implementation.", "Critical",
		"Establish a session before attempting any operations."},
	errNotFound: {http.StatusNotFound, "ResourceMissingAtURI",
		"The resource at the URI %1 was not found.", "Critical",
		"Place a valid resource at the URI or correct the URI and resubmit the request."},
	// Base 1.8 has no message for a method a resource does not support
	// (OperationNotAllowed came later): GeneralError, with a resolution.
	errMethodNotAllowed: {http.StatusMethodNotAllowed, "GeneralError",
		"A general error has occurred. See Resolution for information on how to resolve the error.", "Critical",
		"Use one of the methods the Allow header lists."},
	errTooLarge: {http.StatusRequestEntityTooLarge, "GeneralError",
		"A general error has occurred. See Resolution for information on how to resolve the error.", "Critical",
		fmt.Sprintf("Send a request body of at most %d bytes.", maxBody)},
	errMalformedJSON: {http.StatusBadRequest, "MalformedJSON",
		"The request body submitted was malformed JSON and could not be parsed by the receiving service.", "Critical",
		"Ensure that the request body is valid JSON and resubmit the request."},
	errPropertyMissing: {http.StatusBadRequest, "PropertyMissing",
		"The property %1 is a required property and must be included in the request.", "Warning",
		"Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed."},
	errParameterMissing: {http.StatusBadRequest, "ActionParameterMissing",
		"The action %1 requires the parameter %2 to be present in the request body.", "Critical",
		"Supply the action with the required parameter in the request body when the request is resubmitted."},
	errParameterUnknown: {http.StatusBadRequest, "ActionParameterUnknown",
		"The action %1 was submitted with the invalid parameter %2.", "Warning",
		"Correct the invalid parameter and resubmit the request if the operation failed."},
	errParameterType: {http.StatusBadRequest, "ActionParameterValueTypeError",
		"The value %1 for the parameter %2 in the action %3 is of a different type than the parameter can accept.", "Warning",
		"Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
	// Base 1.8 has no ActionParameterValueNotInList either; like OpenBMC's
	// bmcweb, a reset type the system does not allow is reported with the
	// value as the unsupported parameter.
	errParameterNotSupported: {http.StatusBadRequest, "ActionParameterNotSupported",
		"The parameter %1 for the action %2 is not supported on the target resource.", "Warning",
		"Remove the parameter supplied and resubmit the request if the operation failed."},
}

const registryPrefix = "Base.1.8."

// apiError is an error the client is told about in Redfish's error body.
type apiError struct {
	kind   errKind
	args   []string // the registry message's arguments
	detail string   // the error body's message; default the registry message
	allow  []string // the methods a resource supports, for errMethodNotAllowed
}

func (e *apiError) Error() string {
	if e.detail != "" {
		return e.detail
	}
	return messages[e.kind].format(e.args)
}

func (m registryMessage) format(args []string) string {
	s := m.text
	for i := len(args); i > 0; i-- { // %10 before %1
		s = strings.ReplaceAll(s, fmt.Sprintf("%%%d", i), args[i-1])
	}
	return s
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	ExtendedInfo []extendedEntry `json:"@Message.ExtendedInfo"`
}

type extendedEntry struct {
	ODataType   string   `json:"@odata.type"`
	MessageID   string   `json:"MessageId"`
	Message     string   `json:"Message"`
	MessageArgs []string `json:"MessageArgs"`
	Severity    string   `json:"Severity"`
	Resolution  string   `json:"Resolution"`
}

// errorResponse is the one place errors become responses: the status, the
// headers to add and the body for err. An error that is not an *apiError (a
// System's) is an internal error whose message is err's.
func errorResponse(err error) (int, http.Header, errorBody) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{kind: errInternal, detail: err.Error()}
	}
	m := messages[ae.kind]
	h := http.Header{}
	switch ae.kind {
	case errUnauthorized:
		h.Set("WWW-Authenticate", `Basic realm="redfish"`)
	case errMethodNotAllowed:
		h.Set("Allow", strings.Join(ae.allow, ", "))
	}
	args := ae.args
	if args == nil {
		args = []string{}
	}
	id := registryPrefix + m.key
	return m.status, h, errorBody{Error: errorObject{
		Code:    id,
		Message: ae.Error(),
		ExtendedInfo: []extendedEntry{{
			ODataType:   "#Message.v1_1_1.Message",
			MessageID:   id,
			Message:     m.format(args),
			MessageArgs: args,
			Severity:    m.severity,
			Resolution:  m.resolution,
		}},
	}}
}
