// Package bootapi serves sabakan's network boot REST API under /api/v1:
// OS images, assets, kernel parameters, Ignition templates, and the boot
// endpoints a booting node calls (ipxe.efi, iPXE scripts, kernel, initrd,
// its rendered Ignition). Paths, bodies and statuses are the reference's.
//
// The inventory's web server registers these routes (web.Server.RegisterBoot)
// behind its access control and actor middleware, and renders the errors the
// handlers return, which wrap the model's sentinels.
package bootapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
)

// DefaultIPXEEFI is where Debian's ipxe package installs the EFI binary.
const DefaultIPXEEFI = "/usr/lib/ipxe/ipxe.efi"

// Machines finds machines; the inventory store implements it.
type Machines interface {
	Machine(ctx context.Context, serial string) (*sabakan.Machine, error)
}

// API holds what the handlers serve.
type API struct {
	Content   *content.Store
	Ignitions *ignition.Store
	Machines  Machines
	// URLs are this server's advertised base URLs (no /api/v1 suffix).
	URLs ignition.URLs
	// IPXEEFI is the path of ipxe.efi; DefaultIPXEEFI when empty.
	IPXEEFI string
}

// HandlerFunc serves one request; a returned error is rendered by the web
// server as the reference's JSON error unless the handler already responded.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one endpoint: a method and a net/http path pattern.
type Route struct {
	Method, Pattern string
	Handler         HandlerFunc
}

// Routes lists every endpoint. A GET route also serves HEAD.
func (a *API) Routes() []Route {
	return []Route{
		{"GET", "/api/v1/images/{os}", a.imageIndex},
		{"PUT", "/api/v1/images/{os}/{id}", a.putImage},
		{"GET", "/api/v1/images/{os}/{id}", a.getImage},
		{"DELETE", "/api/v1/images/{os}/{id}", a.deleteImage},

		{"GET", "/api/v1/assets", a.listAssets},
		{"GET", "/api/v1/assets/{name}", a.getAsset},
		{"PUT", "/api/v1/assets/{name}", a.putAsset},
		{"DELETE", "/api/v1/assets/{name}", a.deleteAsset},
		{"GET", "/api/v1/assets/{name}/meta", a.assetMeta},

		{"GET", "/api/v1/kernel_params/{os}", a.getKernelParams},
		{"PUT", "/api/v1/kernel_params/{os}", a.putKernelParams},

		{"GET", "/api/v1/ignitions/{role}", a.ignitionIDs},
		{"GET", "/api/v1/ignitions/{role}/{id}", a.getIgnition},
		{"PUT", "/api/v1/ignitions/{role}/{id}", a.putIgnition},
		{"DELETE", "/api/v1/ignitions/{role}/{id}", a.deleteIgnition},

		{"GET", "/api/v1/boot/ipxe.efi", a.ipxeEFI},
		// Only coreos boots (as in the reference); a literal keeps these
		// patterns apart from boot/ignitions/{serial}/{id}.
		{"GET", "/api/v1/boot/coreos/ipxe", a.ipxeChain},
		{"GET", "/api/v1/boot/coreos/ipxe/{serial}", a.ipxeScript},
		{"GET", "/api/v1/boot/coreos/kernel", a.bootFile(content.KernelFile)},
		{"GET", "/api/v1/boot/coreos/initrd.gz", a.bootFile(content.InitrdFile)},
		{"GET", "/api/v1/boot/ignitions/{serial}/{id}", a.bootIgnition},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sabakan.ErrBadRequest}, args...)...)
}

// readSmall reads a body of at most limit bytes.
func readSmall(r *http.Request, w http.ResponseWriter, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// images

func (a *API) imageIndex(w http.ResponseWriter, r *http.Request) error {
	index, err := a.Content.ImageIndex(r.Context(), r.PathValue("os"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, index)
	return nil
}

func (a *API) putImage(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > content.MaxImageSize {
		return fmt.Errorf("%w: image of %d bytes is over %d", sabakan.ErrTooLarge, r.ContentLength, int64(content.MaxImageSize))
	}
	if err := a.Content.PutImage(r.Context(), r.PathValue("os"), r.PathValue("id"), r.Body); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"status": http.StatusCreated})
	return nil
}

func (a *API) getImage(w http.ResponseWriter, r *http.Request) error {
	osName, id := r.PathValue("os"), r.PathValue("id")
	img, err := a.Content.Image(r.Context(), osName, id)
	if err != nil {
		return err
	}
	if !img.Exists {
		if u, ok := a.Content.PeerURL(img.URLs); ok {
			http.Redirect(w, r, u, http.StatusFound)
			return nil
		}
		return fmt.Errorf("%w: image %s has no copy anywhere", sabakan.ErrNotFound, id)
	}
	w.Header().Set("Content-Type", "application/tar")
	if r.Method == http.MethodHead {
		return nil
	}
	return a.Content.WriteImageTar(r.Context(), osName, id, w)
}

func (a *API) deleteImage(w http.ResponseWriter, r *http.Request) error {
	if err := a.Content.DeleteImage(r.Context(), r.PathValue("os"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// assets

func (a *API) listAssets(w http.ResponseWriter, r *http.Request) error {
	names, err := a.Content.ListAssets(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, names)
	return nil
}

// OptionsHeader prefixes the headers whose values are stored as options.
const OptionsHeader = "X-Sabakan-Asset-Options-"

func (a *API) putAsset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !content.IsValidAssetName(name) {
		return badRequest("invalid asset name %q", name)
	}
	if r.ContentLength > content.MaxAssetSize {
		return fmt.Errorf("%w: asset of %d bytes is over the limit of %d", sabakan.ErrTooLarge, r.ContentLength, int64(content.MaxAssetSize))
	}
	opts := map[string]string{}
	for k, v := range r.Header {
		if len(k) > len(OptionsHeader) && strings.EqualFold(k[:len(OptionsHeader)], OptionsHeader) && len(v) > 0 {
			opts[strings.ToLower(k[len(OptionsHeader):])] = v[0]
		}
	}
	created, id, err := a.Content.PutAsset(r.Context(), content.AssetUpload{
		Name: name, ContentType: r.Header.Get("Content-Type"), Size: r.ContentLength,
		SHA256: r.Header.Get("X-Sabakan-Asset-SHA256"), Options: opts,
	}, r.Body)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"status": status, "id": fmt.Sprint(id)})
	return nil
}

func (a *API) getAsset(w http.ResponseWriter, r *http.Request) error {
	asset, f, err := a.Content.OpenAsset(r.Context(), r.PathValue("name"))
	if errors.Is(err, content.ErrNotLocal) {
		if u, ok := a.Content.PeerURL(asset.URLs); ok {
			http.Redirect(w, r, u, http.StatusFound)
			return nil
		}
		err = fmt.Errorf("%w: asset %s has no copy anywhere yet", sabakan.ErrNotFound, asset.Name)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", asset.ContentType)
	h.Set("X-Sabakan-Asset-ID", fmt.Sprint(asset.ID))
	h.Set("X-Sabakan-Asset-SHA256", asset.SHA256)
	h.Set("ETag", `"`+asset.SHA256+`"`)
	http.ServeContent(w, r, "", asset.Date, f)
	return nil
}

func (a *API) assetMeta(w http.ResponseWriter, r *http.Request) error {
	asset, err := a.Content.GetAsset(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, asset)
	return nil
}

func (a *API) deleteAsset(w http.ResponseWriter, r *http.Request) error {
	if err := a.Content.DeleteAsset(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// kernel parameters

func (a *API) getKernelParams(w http.ResponseWriter, r *http.Request) error {
	p, err := a.Content.KernelParams(r.Context(), r.PathValue("os"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, p)
	return nil
}

func (a *API) putKernelParams(w http.ResponseWriter, r *http.Request) error {
	body, err := readSmall(r, w, content.MaxKernelParamsSize+1024)
	if err != nil {
		return badRequest("kernel parameters: %v", err)
	}
	if err := a.Content.PutKernelParams(r.Context(), r.PathValue("os"), string(body)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// ignition templates

func (a *API) ignitionIDs(w http.ResponseWriter, r *http.Request) error {
	ids, err := a.Ignitions.IDs(r.Context(), r.PathValue("role"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ids)
	return nil
}

func (a *API) getIgnition(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Ignitions.Get(r.Context(), r.PathValue("role"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) putIgnition(w http.ResponseWriter, r *http.Request) error {
	body, err := readSmall(r, w, ignition.MaxTemplateSize)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: template is over %d bytes", sabakan.ErrTooLarge, ignition.MaxTemplateSize)
		}
		return badRequest("%v", err)
	}
	var t ignition.Template
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return badRequest("template body: %v", err)
	}
	role, id := r.PathValue("role"), r.PathValue("id")
	if err := a.Ignitions.Put(r.Context(), role, id, &t); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"status": http.StatusCreated, "role": role, "id": id})
	return nil
}

func (a *API) deleteIgnition(w http.ResponseWriter, r *http.Request) error {
	if err := a.Ignitions.Delete(r.Context(), r.PathValue("role"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// boot

func (a *API) ipxeEFI(w http.ResponseWriter, r *http.Request) error {
	path := a.IPXEEFI
	if path == "" {
		path = DefaultIPXEEFI
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ipxe.efi: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/efi")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

func (a *API) ipxeChain(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "#!ipxe\nchain %s/api/v1/boot/%s/ipxe/${serial}\n", a.URLs.HTTP, content.OSCoreOS)
	return nil
}

// IPXEScript is the script that boots the machine with the newest image,
// pointing the kernel at the ignition template id.
func IPXEScript(baseURL, serial, ignitionID, params string) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "set base-url %s/api/v1/boot/%s\n", baseURL, content.OSCoreOS)
	fmt.Fprintf(&b, "kernel ${base-url}/kernel initrd=initrd.gz coreos.first_boot=1 coreos.config.url=%s/api/v1/boot/ignitions/%s/%s",
		baseURL, serial, ignitionID)
	if params != "" {
		b.WriteString(" " + params)
	}
	b.WriteString("\ninitrd ${base-url}/initrd.gz\nboot\n")
	return b.String()
}

func (a *API) ipxeScript(w http.ResponseWriter, r *http.Request) error {
	m, err := a.Machines.Machine(r.Context(), r.PathValue("serial"))
	if err != nil {
		return err
	}
	id, err := a.Ignitions.Newest(r.Context(), m.Spec.Role)
	if err != nil {
		return err
	}
	params, err := a.Content.KernelParams(r.Context(), content.OSCoreOS)
	if err != nil && !errors.Is(err, sabakan.ErrNotFound) {
		return err
	}
	if r.URL.Query().Get("serial") == "1" {
		params = strings.TrimSpace(params + " console=ttyS0")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, IPXEScript(a.URLs.HTTP, m.Spec.Serial, id, params))
	return nil
}

func (a *API) bootFile(name string) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		path, img, err := a.Content.NewestLocalFile(r.Context(), content.OSCoreOS, name)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Sabakan-Image-ID", img.ID)
		http.ServeContent(w, r, "", img.Date, f)
		return nil
	}
}

func (a *API) bootIgnition(w http.ResponseWriter, r *http.Request) error {
	m, err := a.Machines.Machine(r.Context(), r.PathValue("serial"))
	if err != nil {
		return err
	}
	out, err := a.Ignitions.RenderFor(r.Context(), m, r.PathValue("id"), a.URLs)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
	return nil
}
