package kubeapi

// SetLimits makes the response bound and the Node list page of c small, to
// test them cheaply.
func SetLimits(c *Client, maxResponse, nodePage int) {
	c.maxResponse = maxResponse
	c.nodePage = nodePage
}
