package client

// Boot content: OS images, assets, Ignition templates and kernel
// parameters (the network boot part of the API; see docs/network-boot.md).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Image is an entry of an OS image index.
type Image struct {
	ID     string            `json:"id"`
	Date   time.Time         `json:"date"`
	Size   int64             `json:"size"`
	URLs   []string          `json:"urls"`
	Exists bool              `json:"exists"`
	SHA256 map[string]string `json:"sha256,omitempty"`
}

// Asset is the metadata of an asset.
type Asset struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	ContentType string            `json:"content-type"`
	Date        time.Time         `json:"date"`
	Size        int64             `json:"size"`
	SHA256      string            `json:"sha256"`
	URLs        []string          `json:"urls"`
	Exists      bool              `json:"exists"`
	Options     map[string]string `json:"options"`
}

// IgnitionTemplate is the body of PUT/GET /ignitions/<role>/<id>.
type IgnitionTemplate struct {
	Version  string          `json:"version"`
	Template json.RawMessage `json:"template"`
	Meta     map[string]any  `json:"meta"`
}

func esc(s string) string { return url.PathEscape(s) }

// upload sends a body of known size with extra headers.
func (c *Client) upload(ctx context.Context, path string, body io.Reader, size int64, hdr http.Header) (*http.Response, error) {
	u := *c.base
	u.Path += "/api/v1/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.user != "" {
		req.Header.Set(HeaderUser, c.user)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	var eb struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
		e.Message = eb.Error
	}
	return nil, e
}

// Images returns the image index of an OS, oldest first.
func (c *Client) Images(ctx context.Context, osName string) ([]Image, error) {
	var r []Image
	return r, c.call(ctx, request{method: http.MethodGet, path: "images/" + esc(osName)}, &r)
}

// PutImage uploads an image: body is a tar of "kernel" and "initrd.gz" of
// size bytes.
func (c *Client) PutImage(ctx context.Context, osName, id string, body io.Reader, size int64) error {
	resp, err := c.upload(ctx, "images/"+esc(osName)+"/"+esc(id), body, size, http.Header{"Content-Type": {"application/tar"}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// DeleteImage removes an image from the index.
func (c *Client) DeleteImage(ctx context.Context, osName, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "images/" + esc(osName) + "/" + esc(id)}, nil)
}

// Assets returns the asset names, sorted.
func (c *Client) Assets(ctx context.Context) ([]string, error) {
	var r []string
	return r, c.call(ctx, request{method: http.MethodGet, path: "assets"}, &r)
}

// AssetInfo returns an asset's metadata.
func (c *Client) AssetInfo(ctx context.Context, name string) (*Asset, error) {
	a := new(Asset)
	return a, c.call(ctx, request{method: http.MethodGet, path: "assets/" + esc(name) + "/meta"}, a)
}

// AssetUpload describes an asset to upload.
type AssetUpload struct {
	ContentType string
	// SHA256, when set, is checked by the server.
	SHA256 string
	// Options are stored with the asset (lower-cased keys).
	Options map[string]string
}

// PutAsset uploads an asset of size bytes. It returns whether the name was
// new and the asset's new ID.
func (c *Client) PutAsset(ctx context.Context, name string, body io.Reader, size int64, u AssetUpload) (bool, string, error) {
	hdr := http.Header{}
	ctype := u.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	hdr.Set("Content-Type", ctype)
	if u.SHA256 != "" {
		hdr.Set("X-Sabakan-Asset-SHA256", u.SHA256)
	}
	for k, v := range u.Options {
		hdr.Set("X-Sabakan-Asset-Options-"+k, v)
	}
	resp, err := c.upload(ctx, "assets/"+esc(name), body, size, hdr)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	var r struct {
		Status int    `json:"status"`
		ID     string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return false, "", fmt.Errorf("sabakan: decode PUT assets/%s: %w", name, err)
	}
	return resp.StatusCode == http.StatusCreated, r.ID, nil
}

// DeleteAsset removes an asset.
func (c *Client) DeleteAsset(ctx context.Context, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "assets/" + esc(name)}, nil)
}

// IgnitionIDs returns the template ids of a role, oldest version first.
func (c *Client) IgnitionIDs(ctx context.Context, role string) ([]string, error) {
	var r []string
	return r, c.call(ctx, request{method: http.MethodGet, path: "ignitions/" + esc(role)}, &r)
}

// Ignition returns a template.
func (c *Client) Ignition(ctx context.Context, role, id string) (*IgnitionTemplate, error) {
	t := new(IgnitionTemplate)
	return t, c.call(ctx, request{method: http.MethodGet, path: "ignitions/" + esc(role) + "/" + esc(id)}, t)
}

// PutIgnition stores a new template; an existing id is a conflict.
func (c *Client) PutIgnition(ctx context.Context, role, id string, t *IgnitionTemplate) error {
	body, err := jsonBody(t)
	if err != nil {
		return err
	}
	return c.call(ctx, request{method: http.MethodPut, path: "ignitions/" + esc(role) + "/" + esc(id), body: body, ctype: "application/json"}, nil)
}

// DeleteIgnition removes a template.
func (c *Client) DeleteIgnition(ctx context.Context, role, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "ignitions/" + esc(role) + "/" + esc(id)}, nil)
}

// KernelParams returns the kernel parameters of an OS.
func (c *Client) KernelParams(ctx context.Context, osName string) (string, error) {
	return c.text(ctx, request{method: http.MethodGet, path: "kernel_params/" + esc(osName)})
}

// SetKernelParams sets the kernel parameters of an OS.
func (c *Client) SetKernelParams(ctx context.Context, osName, params string) error {
	return c.call(ctx, request{method: http.MethodPut, path: "kernel_params/" + esc(osName), body: strings.NewReader(params), ctype: "text/plain"}, nil)
}
