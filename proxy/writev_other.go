//go:build !linux

package proxy

// moreState is empty where the header cannot be flagged MSG_MORE.
type moreState struct{}

// sendHeldMore sends the held header on its own.
func (c *frontConn) sendHeldMore() error {
	_, err := c.writeHeld(nil)
	return err
}
