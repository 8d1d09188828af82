package client

// OfferBytes is offerBytes, for the tests of the offers' memory bound.
const OfferBytes = offerBytes
