"""text_encoders"""
